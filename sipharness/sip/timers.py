"""RFC 3261 §17 transaction timer values (table 4) and RFC 6026 Timers L and M.

``TimerConfig(t1=0.5, t2=4.0, t4=5.0)`` derives every timer; values that depend on the
transport take ``reliable`` (TCP/TLS/SCTP: True, UDP: False). All values are seconds.

- A, E, G: first retransmission interval (T1); see ``invite_interval`` (A: doubling,
  uncapped) and ``non_invite_interval`` (E and G: doubling, capped at T2).
- B, F, H, L, M: 64·T1. J: 64·T1 unreliable, 0 reliable.
- D: ``timer_d`` (default 32 s, "> 32 s" in table 4) unreliable, 0 reliable.
- I, K: T4 unreliable, 0 reliable.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TimerConfig:
    """T1 (RTT estimate), T2 (cap for non-INVITE retransmissions), T4 (network lifetime)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_d: float = 32.0

    def __post_init__(self) -> None:
        if min(self.t1, self.t2, self.t4) <= 0 or self.timer_d < 0:
            raise ValueError("T1, T2 and T4 must be positive and Timer D not negative")

    @property
    def a(self) -> float:
        """Timer A: first INVITE retransmission interval."""
        return self.t1

    @property
    def b(self) -> float:
        """Timer B: INVITE transaction timeout."""
        return 64 * self.t1

    def d(self, reliable: bool) -> float:
        """Timer D: wait time for response retransmissions after a non-2xx to INVITE."""
        return 0.0 if reliable else self.timer_d

    @property
    def e(self) -> float:
        """Timer E: first non-INVITE retransmission interval."""
        return self.t1

    @property
    def f(self) -> float:
        """Timer F: non-INVITE transaction timeout."""
        return 64 * self.t1

    @property
    def g(self) -> float:
        """Timer G: first INVITE final-response retransmission interval (server)."""
        return self.t1

    @property
    def h(self) -> float:
        """Timer H: wait time for the ACK to a non-2xx final response (server)."""
        return 64 * self.t1

    def i(self, reliable: bool) -> float:
        """Timer I: wait time for ACK retransmissions (server)."""
        return 0.0 if reliable else self.t4

    def j(self, reliable: bool) -> float:
        """Timer J: wait time for non-INVITE request retransmissions (server)."""
        return 0.0 if reliable else 64 * self.t1

    def k(self, reliable: bool) -> float:
        """Timer K: wait time for non-INVITE response retransmissions (client)."""
        return 0.0 if reliable else self.t4

    @property
    def l(self) -> float:  # noqa: E743 - the RFC 6026 name
        """Timer L (RFC 6026): server INVITE transaction lingers in Accepted after a 2xx."""
        return 64 * self.t1

    @property
    def m(self) -> float:
        """Timer M (RFC 6026): client INVITE transaction lingers in Accepted after a 2xx."""
        return 64 * self.t1

    def invite_interval(self, retransmissions: int) -> float:
        """Timer A after ``retransmissions`` resends: T1·2ⁿ, never capped (§17.1.1.2)."""
        return self.t1 * 2**retransmissions

    def non_invite_interval(self, retransmissions: int) -> float:
        """Timers E, G and the 2xx resend interval after n resends: min(T1·2ⁿ, T2)."""
        return min(self.t1 * 2**retransmissions, self.t2)
