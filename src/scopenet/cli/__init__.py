"""scopenet.cli"""
