"""The ramp load shape (see loadtests/README.md).

    locust -f loadtests/locustfile.py,loadtests/shapes/ramp.py --headless ...
"""

from sipharness.load.shapes import RampShape

__all__ = ["RampShape"]
