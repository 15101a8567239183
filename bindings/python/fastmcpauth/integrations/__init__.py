"""Adapters that let Python MCP servers use libfastmcpauth (imported on demand)."""
