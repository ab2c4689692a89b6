"""scopenet.training"""
