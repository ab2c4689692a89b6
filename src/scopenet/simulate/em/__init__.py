"""scopenet.simulate.em"""
