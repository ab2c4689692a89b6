"""scopenet.simulate"""
