"""An aiosmtpd handler that answers like a relay in trouble, chosen by the recipient's local part.

soft*@…  → 451 at RCPT (temporary)      hard*@… → 550 at RCPT (permanent)
drop*@…  → closes the connection at DATA  anything else → delivered to the maildir given on the CLI
"""
from aiosmtpd.handlers import Mailbox


class FaultHandler(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0]
        if local.startswith("soft"):
            return "451 4.3.0 Mailbox temporarily unavailable, try later"
        if local.startswith("hard"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if any(r.split("@", 1)[0].startswith("drop") for r in envelope.rcpt_tos):
            server.transport.close()
            return "421 4.4.2 Connection dropped"
        return await super().handle_DATA(server, session, envelope)

    @classmethod
    def from_cli(cls, parser, *args):
        return cls(*args)
