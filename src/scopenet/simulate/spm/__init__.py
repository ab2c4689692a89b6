"""scopenet.simulate.spm"""
