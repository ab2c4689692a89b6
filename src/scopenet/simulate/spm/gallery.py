"""Gallery figure and demo-report section (filled in below)."""
def gallery_png(seed=0, size=128): raise NotImplementedError
def demo_section(report, workdir, samples): raise NotImplementedError
