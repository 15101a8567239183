import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(HERE.parent))
VECTORS = Path(os.environ.get("FASTMCPAUTH_VECTORS", REPO.parent / "shared" / "vectors"))
LIBRARY = REPO / ".build" / "release" / "libfastmcpauth.so"
