"""scopenet.label"""
