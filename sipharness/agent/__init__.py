"""One call at a time or thousands: place and control SIP calls and record every message.

    agent = Agent("udp", timers=TimerConfig())
    call = agent.dial("sip:abc-defg-hij@127.0.0.1:5060", credentials=Credentials("u", "p"))
    if call.outcome.answered:
        agent.finish(call)          # BYE, outcome.ending == "completed"
    call.record                     # every message sent and received, timings, outcome
"""

from sipharness.agent.call import (
    Call,
    CallError,
    CallState,
    CallTimeout,
    CallTransportError,
    NoChallenge,
    UnexpectedResponse,
)
from sipharness.agent.media import MediaEndpoint, default_offer, remote_media, with_direction
from sipharness.agent.record import PHASES, CallRecord, MessageEntry, Outcome
from sipharness.agent.useragent import Agent, room_uri
from sipharness.sip.digest import Credentials
from sipharness.sip.timers import TimerConfig

__all__ = [
    "PHASES",
    "Agent",
    "Call",
    "CallError",
    "CallRecord",
    "CallState",
    "CallTimeout",
    "CallTransportError",
    "Credentials",
    "MediaEndpoint",
    "MessageEntry",
    "NoChallenge",
    "Outcome",
    "TimerConfig",
    "UnexpectedResponse",
    "default_offer",
    "remote_media",
    "room_uri",
    "with_direction",
]
