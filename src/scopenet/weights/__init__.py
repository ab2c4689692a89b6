"""scopenet.weights"""
