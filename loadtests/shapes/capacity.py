"""The capacity load shape (see loadtests/README.md).

    locust -f loadtests/locustfile.py,loadtests/shapes/capacity.py --headless ...
"""

from sipharness.load.shapes import CapacitySearchShape

__all__ = ["CapacitySearchShape"]
