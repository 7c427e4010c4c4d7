"""Locust dials a SIP bridge like a fleet of trunks: each user places calls from the scenarios.

    locust -f loadtests/locustfile.py --headless -u 20 -r 5 -t 30s --csv out/run --html out/run.html

With no --sip-target the mock bridge is started on loopback. Add a shape from
loadtests/shapes/ for ramp, soak, spike or capacity search; see loadtests/README.md.
"""

from sipharness.load.run import install
from sipharness.load.user import SipUser

install()


class Trunk(SipUser):
    """One SIP trunk: dials, holds, hangs up, again, until the run ends."""
