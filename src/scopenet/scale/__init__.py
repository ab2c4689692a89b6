"""scopenet.scale"""
