"""scopenet.metrics"""
