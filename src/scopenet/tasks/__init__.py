"""scopenet.tasks"""
