#!/usr/bin/env python3
"""A throttling TCP proxy for bench/offsite.sh (python3 stdlib only): a slow link in front of
an S3 server. Every byte either way, over all connections together, goes through one token
bucket of RATE bytes per second; the listening socket's receive buffer is small, so the client
sees its data acknowledged about as fast as the link carries it.

  throttle.py LISTEN_PORT UPSTREAM_PORT RATE_BYTES_PER_S
"""

import socket
import sys
import threading
import time


class Bucket:
    def __init__(self, rate):
        self.rate = rate
        self.lock = threading.Lock()
        self.next = time.monotonic()

    def take(self, n):
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next)
            self.next = start + n / self.rate
            wait = start - now
        if wait > 0:
            time.sleep(wait)


def pump(src, dst, bucket, piece):
    try:
        while True:
            data = src.recv(piece)
            if not data:
                break
            bucket.take(len(data))
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                s.shutdown(how)
            except OSError:
                pass


def serve(client, upstream, bucket, piece):
    try:
        up = socket.create_connection(("127.0.0.1", upstream))
    except OSError:
        client.close()
        return
    a = threading.Thread(target=pump, args=(client, up, bucket, piece), daemon=True)
    b = threading.Thread(target=pump, args=(up, client, bucket, piece), daemon=True)
    a.start()
    b.start()
    a.join()
    b.join()
    client.close()
    up.close()


def main():
    listen, upstream, rate = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    bucket = Bucket(rate)
    # Pieces of about a tenth of a second's worth: the link moves smoothly.
    piece = max(1024, min(64 << 10, rate // 10))
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    srv.bind(("127.0.0.1", listen))
    srv.listen(64)
    while True:
        client, _ = srv.accept()
        threading.Thread(target=serve, args=(client, upstream, bucket, piece), daemon=True).start()


if __name__ == "__main__":
    main()
