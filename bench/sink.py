"""An HTTP endpoint that reads each request and answers 202, for nothing else: what a
sender can do when the server costs (almost) nothing. Run in its own process:

    python -m bench.sink PORT
"""

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client expects of the server
    # Headers and body go out in two writes: without this, Nagle's algorithm holds the
    # body until the client's delayed ACK of the headers, 40 ms a request.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"accepted":0,"rejected":[]}'
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
