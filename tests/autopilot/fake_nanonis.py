"""A fake Nanonis controller on loopback: the TCP programming interface's framing, backed by the simulator.

Request: 32-byte command name, body size (int32 BE), response flag (uint16), 2 zero bytes, body.
Response: 32-byte command name, body size, 4 zero bytes, body = return values + error status (uint32)
+ error description size (int32) + description. Only the commands the autopilot uses are known; any
other gets an error description (as the real controller answers unknown commands).
"""
from __future__ import annotations

import socket
import struct
import threading

import numpy as np

from scopenet.autopilot.instrument import InstrumentError
from scopenet.autopilot.sim import SimMicroscope

# request body layouts of the commands served (struct format, big-endian)
LAYOUT = {"Bias.Set": ">f", "ZCtrl.SetpntSet": ">f", "Scan.FrameSet": ">fffff", "Scan.Action": ">HI",
          "Scan.WaitEndOfScan": ">i", "Scan.FrameDataGrab": ">II", "FolMe.XYPosSet": ">ddI",
          "Bias.Pulse": ">IffHH", "TipShaper.PropsSet": ">fIffffffffI", "TipShaper.Start": ">Ii",
          "ZCtrl.Withdraw": ">Ii", "AutoApproach.OnOffSet": ">H"}


def _recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


class FakeNanonis:
    """Serve one client at a time on 127.0.0.1 (``.port``); ``.commands`` records what was asked."""

    def __init__(self, seed: int = 0):
        self.sim = SimMicroscope(seed=seed)
        self.commands: list[tuple[str, tuple]] = []
        self.frame = (0.0, 0.0, 8e-9)
        self.pixels = 64
        self.data = np.zeros((64, 64), np.float32)
        self.shaper = None
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self):
        self._stop = True
        self.srv.close()

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            with conn:
                try:
                    while True:
                        head = _recv_exact(conn, 40)
                        name = head[:32].rstrip(b"\0").decode()
                        size = struct.unpack(">i", head[32:36])[0]
                        body = _recv_exact(conn, size) if size else b""
                        conn.sendall(self._answer(name, body))
                except (ConnectionError, OSError):
                    continue

    def _answer(self, name: str, body: bytes) -> bytes:
        values, err = b"", ""
        try:
            values = self._handle(name, body)
        except (InstrumentError, KeyError, struct.error) as e:
            err = f"{type(e).__name__}: {e}"
        e = err.encode()
        payload = values + struct.pack(">I", 1 if err else 0) + struct.pack(">i", len(e)) + e
        return name.encode().ljust(32, b"\0") + struct.pack(">i", len(payload)) + b"\0" * 4 + payload

    def _handle(self, name: str, body: bytes) -> bytes:
        if name == "Scan.BufferSet":
            n = struct.unpack(">i", body[:4])[0]
            chans = struct.unpack(f">{n}i", body[4:4 + 4 * n])
            px, lines = struct.unpack(">ii", body[4 + 4 * n:])
            self.commands.append((name, (list(chans), px, lines)))
            self.pixels = px
            return b""
        args = struct.unpack(LAYOUT[name], body)
        self.commands.append((name, args))
        sim = self.sim
        if name == "Scan.FrameSet":
            self.frame = (args[0], args[1], args[2])
        elif name == "Scan.Action":
            img = sim.scan((self.frame[0] * 1e9, self.frame[1] * 1e9), self.frame[2] * 1e9, self.pixels)
            self.data = np.asarray(img.data, np.float32)
        elif name == "Scan.WaitEndOfScan":
            return struct.pack(">II", 0, 0)
        elif name == "Scan.FrameDataGrab":
            ch = b"Z (m)"
            h, w = self.data.shape
            return (struct.pack(">i", len(ch)) + ch + struct.pack(">ii", h, w)
                    + self.data.astype(">f4").tobytes() + struct.pack(">I", 0))
        elif name == "FolMe.XYPosSet":
            sim.move(args[0] * 1e9, args[1] * 1e9)
        elif name == "Bias.Pulse":
            sim.pulse(args[2], args[1])
        elif name == "TipShaper.PropsSet":
            self.shaper = args
        elif name == "TipShaper.Start":
            sim.dip(-self.shaper[3] * 1e9, self.shaper[2])
        elif name == "ZCtrl.Withdraw":
            sim.withdraw()
        elif name == "AutoApproach.OnOffSet":
            sim.approach()
        return b""
