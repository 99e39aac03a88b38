"""HTTP server on $PORT using only the standard library and the local greeter package."""
import http.server
import os

from greeter import greet


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = greet(self.path.strip("/") or "world").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
