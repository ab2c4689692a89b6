"""The Nanonis backend against a fake controller on loopback (nanonis-spm's real client code)."""
import numpy as np
import pytest

pytest.importorskip("nanonis_spm")

from scopenet.autopilot.instrument import InstrumentError, LostContactError  # noqa: E402
from scopenet.autopilot.nanonis import NanonisMicroscope  # noqa: E402

from .fake_nanonis import FakeNanonis  # noqa: E402


@pytest.fixture
def server():
    s = FakeNanonis(seed=2)
    yield s
    s.close()


def test_scan_move_pulse_dip_withdraw_speak_the_protocol(server):
    m = NanonisMicroscope("127.0.0.1", server.port, timeout_s=20)
    try:
        img = m.scan((100.0, 200.0), 8.0, pixels=32, bias_v=-1.5, setpoint_a=20e-12)
        assert img.shape == (32, 32) and img.metadata["backend"] == "nanonis"
        # the image is the simulator's scan of the same frame, sent as float32 big-endian
        assert np.allclose(img.data, server.data) and np.std(img.data) > 0
        m.move(300.0, 2450.0)
        m.pulse(4.0, 0.2)
        m.move(340.0, 2450.0)
        m.dip(1.2)
        m.withdraw()
        m.approach()
    finally:
        m.close()
    names = [c[0] for c in server.commands]
    assert names[:7] == ["Bias.Set", "ZCtrl.SetpntSet", "Scan.BufferSet", "Scan.FrameSet", "Scan.Action",
                         "Scan.WaitEndOfScan", "Scan.FrameDataGrab"]
    args = dict(server.commands)
    assert args["Bias.Set"][0] == pytest.approx(-1.5)
    assert args["Scan.FrameSet"][:3] == pytest.approx((100e-9, 200e-9, 8e-9))
    assert args["Scan.BufferSet"] == ([0], 32, 32)
    assert args["Bias.Pulse"][1:3] == pytest.approx((0.2, 4.0)) and args["Bias.Pulse"][3:] == (1, 2)
    assert args["TipShaper.PropsSet"][3] == pytest.approx(-1.2e-9) and args["TipShaper.PropsSet"][7] == pytest.approx(1.2e-9)
    assert "TipShaper.Start" in names and "ZCtrl.Withdraw" in names and "AutoApproach.OnOffSet" in names
    # the simulator behind the fake received the actions
    assert [r.method for r in server.sim.log][-5:] == ["pulse", "move", "dip", "withdraw", "approach"]
    assert [r.method for r in m.log] == ["scan", "move", "pulse", "move", "dip", "withdraw", "approach"]


def test_controller_errors_are_typed(server):
    m = NanonisMicroscope("127.0.0.1", server.port, timeout_s=20)
    try:
        m.move(300.0, 2450.0)
        m.pulse(4.0)
        with pytest.raises(InstrumentError, match="AreaUsedError"):
            m.pulse(4.0)             # the simulator behind refuses a used spot: an error string comes back
        assert m.log[-1].error == "InstrumentError"
    finally:
        m.close()


def test_unreachable_controller():
    import socket

    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(LostContactError):
        NanonisMicroscope("127.0.0.1", port, timeout_s=2)
