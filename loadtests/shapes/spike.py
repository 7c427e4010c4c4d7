"""The spike load shape (see loadtests/README.md).

    locust -f loadtests/locustfile.py,loadtests/shapes/spike.py --headless ...
"""

from sipharness.load.shapes import SpikeShape

__all__ = ["SpikeShape"]
