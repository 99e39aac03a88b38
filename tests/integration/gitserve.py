"""A git server for tests: `git http-backend` as a CGI behind a threaded HTTP
server on 127.0.0.1 (smart HTTP, which libgit2 speaks). Repositories under
/private/ need HTTP basic auth with user x-access-token and the given token."""
import base64
import http.server
import os
import subprocess
import threading


def serve_git(project_root, private_token=None, log=None):
    """Serves the bare repositories under project_root; returns (server, base URL).
    log, when given, is a list each request path is appended to."""

    class GitHandler(http.server.BaseHTTPRequestHandler):
        """Runs git http-backend as a CGI; /private/ needs the token (HTTP basic)."""

        def log_message(self, *a):
            pass

        def _serve(self):
            path, _, query = self.path.partition("?")
            if log is not None:
                log.append(path)
            if path.startswith("/private/"):
                want = "Basic " + base64.b64encode(("x-access-token:" + private_token).encode()).decode()
                if self.headers.get("Authorization") != want:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            env = dict(os.environ, GIT_PROJECT_ROOT=project_root, GIT_HTTP_EXPORT_ALL="1", PATH_INFO=path,
                       QUERY_STRING=query, REQUEST_METHOD=self.command, REMOTE_ADDR="127.0.0.1",
                       CONTENT_TYPE=self.headers.get("Content-Type", ""), CONTENT_LENGTH=str(len(body)))
            if self.headers.get("Content-Encoding"):
                env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
            out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
            head, _, payload = out.partition(b"\r\n\r\n")
            status = 200
            headers = []
            for line in head.decode().split("\r\n"):
                k, _, v = line.partition(":")
                if k.lower() == "status":
                    status = int(v.strip().split()[0])
                elif k:
                    headers.append((k, v.strip()))
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _serve
        do_POST = _serve


    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), GitHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"
