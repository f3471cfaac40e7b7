"""A TCP forwarder that can be started after a client already points at its port:
"the server is down, then it comes up" without touching the client."""

import socket
import socketserver
import threading


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Forwarder:
    def __init__(self, port: int, target: tuple[str, int]):
        self.port = port
        self.target = target
        self.server: socketserver.ThreadingTCPServer | None = None

    def start(self) -> None:
        target = self.target

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                upstream = socket.create_connection(target)
                pipes = [
                    threading.Thread(target=_pipe, args=(self.request, upstream), daemon=True),
                    threading.Thread(target=_pipe, args=(upstream, self.request), daemon=True),
                ]
                for t in pipes:
                    t.start()
                for t in pipes:
                    t.join()
                upstream.close()

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
