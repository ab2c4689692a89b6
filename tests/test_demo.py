"""`make demo` end to end: every section runs on the bundled samples and lands in the report."""
import pytest

from scopenet import demo


@pytest.mark.slow
def test_every_demo_section_runs_and_is_in_the_report(tmp_path):
    rc = demo.run(tmp_path / "out")
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert rc == 0, html[html.find('class="err"'):][:3000]
    assert 'class="err"' not in html
    assert html.count("<section") >= len(demo.SECTIONS)  # each runner adds at least one section
    assert html.count("data:image/png;base64,") >= len(demo.SECTIONS)
