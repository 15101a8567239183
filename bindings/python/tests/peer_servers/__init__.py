"""Servers and a headless browser for the OAuth client's tests against its peers
(test_oauth_client_peers.py): fastmcpauth-host, FastMCP 4.x, and a step-up MCP server."""
