"""scopenet.autopilot"""
