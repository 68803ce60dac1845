#!/usr/bin/python3
# A misbehaving OpenAI-compatible server for tests/eval/endpoint_test.sh: forwards requests to a
# real `todae serve` (so the answers are real) but
#   --busy N        answers the first N POSTs with 429 (Retry-After: 0) before forwarding any;
#   --fail-after N  forwards N POSTs, then answers every later one with 503;
#   --api-key KEY   answers 401 unless the request carries Authorization: Bearer KEY.
# It writes the port it listens on to --port-file and counts what it did in --log (one line each).
import argparse
import http.server
import os
import threading
import urllib.error
import urllib.request

ap = argparse.ArgumentParser()
ap.add_argument("--upstream", required=True)
ap.add_argument("--port-file", required=True)
ap.add_argument("--log", required=True)
ap.add_argument("--busy", type=int, default=0)
ap.add_argument("--fail-after", type=int, default=-1)
ap.add_argument("--api-key", default="")
args = ap.parse_args()

lock = threading.Lock()
posts = 0


def log(line):
    with lock, open(args.log, "a") as f:
        f.write(line + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, status, body, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def forward(self, method, body=None):
        req = urllib.request.Request(args.upstream + self.path, data=body, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                self.answer(r.status, r.read())
        except urllib.error.HTTPError as e:
            self.answer(e.code, e.read())

    def authorized(self):
        if args.api_key and self.headers.get("Authorization", "") != "Bearer " + args.api_key:
            log("401")
            self.answer(401, b'{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error"}}')
            return False
        return True

    def do_GET(self):
        if self.authorized():
            self.forward("GET")

    def do_POST(self):
        global posts
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if not self.authorized():
            return
        with lock:
            posts += 1
            n = posts
        if n <= args.busy:
            log("429")
            self.answer(429, b'{"error":{"message":"busy","type":"requests"}}', [("Retry-After", "0")])
        elif args.fail_after >= 0 and n > args.fail_after:
            log("503")
            self.answer(503, b'{"error":{"message":"the model went away","type":"server_error"}}')
        else:
            log("ok")
            self.forward("POST", body)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(args.port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(args.port_file + ".tmp", args.port_file)
server.serve_forever()
