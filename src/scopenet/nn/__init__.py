"""scopenet.nn"""
