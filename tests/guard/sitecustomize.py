# Loaded by every Python process the tests start (PYTHONPATH): the loopback-only network guard.
import netguard

netguard.install()
