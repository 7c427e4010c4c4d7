"""The embedded target: with no ``--sip-target``, the mock bridge (and a webhook receiver).

Started once, in the process that coordinates the run (the master, or a local runner);
workers learn its address from the options the master sends with every spawn message. It
is configured as the conformance runner configures it (the ``mock`` target profile), so
the same scenario files hold against it.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable

from sipharness.bridge.process import MockBridge
from sipharness.load.options import Target
from sipharness.scenario.profiles import DEFAULT_PROFILE, load_profile
from sipharness.webhooks import WebhookReceiver

log = logging.getLogger(__name__)


class EmbeddedBridge:
    """The mock bridge on loopback for one load run, with its webhooks counted."""

    def __init__(self, transport: str = "udp", faults: Iterable[str] = ()) -> None:
        self.transport = transport or "udp"
        self.faults = list(faults)
        self.webhooks = WebhookReceiver()
        self.bridge: MockBridge | None = None

    def start(self) -> Target:
        """Start the receiver and the bridge; the target to dial."""
        self.webhooks.start()
        overrides = copy.deepcopy(dict(load_profile(DEFAULT_PROFILE).bridge))
        bridge = MockBridge(faults=self.faults, webhook_url=self.webhooks.url,
                            overrides=overrides, transports=(self.transport,))  # fmt: skip
        self.bridge = bridge.start()
        log.info("no --sip-target: started the mock bridge on %s (%s)%s",
                 bridge.target(self.transport), self.transport,
                 f" with faults {', '.join(self.faults)}" if self.faults else "")  # fmt: skip
        return Target(bridge.sip_host, bridge.port_for(self.transport), self.transport,
                      bridge.username, bridge.password, bridge.room_code)  # fmt: skip

    def webhook_counts(self) -> dict[str, int]:
        """Join and leave webhooks received so far, and joins repeated for one peer."""
        joins = self.webhooks.events("peer.join.success")
        peers = [str(e.data.get("peer_id")) for e in joins]
        return {"joins": len(joins), "leaves": len(self.webhooks.events("peer.leave.success")),
                "repeated_joins": len(peers) - len(set(peers))}  # fmt: skip

    def stop(self) -> None:
        """Stop the bridge (its calls get BYE and leave webhooks) and the receiver."""
        if self.bridge is not None:
            self.bridge.stop()
            self.bridge.cleanup()
            self.bridge = None
        self.webhooks.close()
