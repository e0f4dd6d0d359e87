"""Start the studio: bind the socket, say where it is, run uvicorn until Ctrl-C."""

from __future__ import annotations

import ipaddress
import socket
import sys
from pathlib import Path

from arranger.errors import InputError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free one); InputError if taken."""
    if not 0 <= port <= 65535:
        raise InputError("--port", port, "0..65535")
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror:
        raise InputError("--host", host, "an address of this machine, e.g. 127.0.0.1") from None
    sock = socket.socket(info[0], socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(info[4])
    except OSError as e:
        sock.close()
        raise InputError("--port", port, f"a free port on {host} ({e.strerror})") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, library: Path | None = None,
          weights: Path | None = None) -> None:
    """Run the studio on ``host:port`` over ``library`` (default: the user's data folder)."""
    import uvicorn

    from arranger.studio.app import create_app
    from arranger.studio.library import default_library

    library = Path(library) if library is not None else default_library()
    if library.exists() and not library.is_dir():
        raise InputError("--library", str(library), "a folder")
    sock = bind(host, port)
    url_host = f"[{host}]" if ":" in host else host
    print(f"lofi studio: http://{url_host}:{sock.getsockname()[1]}/  (library: {library})",
          flush=True)
    if not is_loopback(host):
        print(f"warning: listening on {host}, not only on this machine: anyone who can reach it "
              "can make songs and read every song in the library", file=sys.stderr, flush=True)
    config = uvicorn.Config(create_app(library, weights=weights), log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])
