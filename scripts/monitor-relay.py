#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The host side of the guest's request channel (scripts/guest.sh).

The tests run inside the guest; some of what they test starts on the host, in QEMU's
monitor.  The guest writes one request per line to its third serial port (ttyS2), which
QEMU connects to the socket CHANNEL; this relay reads each line, does what it asks through
QEMU's QMP socket MONITOR and writes one answer line back: "ok TEXT" or "error TEXT".

Requests:
  inject ID ERROR   pcie_aer_inject_error ID ERROR (HMP, through human-monitor-command):
                    QEMU's device ID reports the AER error named ERROR (QEMU's names:
                    UNSUP, MALF_TLP, RCVR, ...) to its root port, as hardware would.

Usage: monitor-relay.py CHANNEL MONITOR STOPFILE
It waits for QEMU to create both sockets, until STOPFILE exists (guest.sh writes it when
QEMU has exited), and ends when QEMU closes them.
"""

import json
import os
import re
import socket
import sys
import time

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
ERROR = re.compile(r"^[A-Z][A-Z_]{0,31}$")


def log(msg):
    print(f"monitor-relay: {msg}", file=sys.stderr, flush=True)


def connect(path, stopfile):
    """Connects to the Unix socket at path once QEMU listens on it; None if QEMU is gone."""
    while not os.path.exists(stopfile):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            time.sleep(0.1)
    return None


class Qmp:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.read_message()  # the greeting
        self.call("qmp_capabilities")

    def read_message(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(4096)
            if not data:
                raise EOFError("QMP closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, command, **arguments):
        msg = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self.read_message()
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise RuntimeError(reply["error"].get("desc", "QMP error"))
            # An asynchronous event: not an answer.


def answer(qmp, line):
    words = line.split()
    if len(words) == 3 and words[0] == "inject":
        dev, error = words[1], words[2]
        if not NAME.match(dev) or not ERROR.match(error):
            return f"error bad device id or error name in {line!r}"
        try:
            out = qmp.call("human-monitor-command", **{"command-line": f"pcie_aer_inject_error {dev} {error}"})
        except RuntimeError as e:
            return f"error {e}"
        out = " ".join(out.split())
        # HMP prints "OK id: ..." when it injected the error, a reason when it did not.
        return f"ok {out}" if out.startswith("OK id:") else f"error {out or 'no answer'}"
    return f"error unknown request {line!r}"


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    channel_path, monitor_path, stopfile = sys.argv[1:]
    qmp_sock = connect(monitor_path, stopfile)
    channel = connect(channel_path, stopfile) if qmp_sock else None
    if not channel:
        log("QEMU exited before its sockets could be reached")
        return
    try:
        qmp = Qmp(qmp_sock)
        buf = b""
        while True:
            data = channel.recv(4096)
            if not data:
                return
            buf += data
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                line = raw.decode("ascii", "replace").strip()
                if not line:
                    continue
                reply = answer(qmp, line)
                log(f"{line} -> {reply}")
                channel.sendall(reply.encode() + b"\n")
    except (EOFError, ConnectionError) as e:
        log(f"QEMU closed its sockets ({e})")


if __name__ == "__main__":
    main()
