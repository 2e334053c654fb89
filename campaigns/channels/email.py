"""Email through Django's email backends (SMTP, or an ESP through django-anymail).

Each email carries ``Message-ID: <uuid@domain>`` (the message's idempotency key), and the RFC 8058
one-click unsubscribe headers: ``List-Unsubscribe: <https://.../unsubscribe/<token>>`` and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click``.

SMTP has no idempotency key: if a worker dies after the server accepted a message and before the
send was recorded, the message goes out again on retry. The sender records each outcome before the
next send, so that window is one message per dead worker; receiving systems that collapse
duplicates by Message-ID (Gmail among them) show it once.
"""

import contextlib
import re
import smtplib

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as SmtpEmailBackend
from django.core.mail.message import sanitize_address
from django.utils.module_loading import import_string

from campaigns.channels.base import ChannelBackend, Outgoing, PermanentError, TransientError
from campaigns.content.email_message import email_message_build

# Django email backends that deliver within this process (development and tests).
IN_PROCESS_BACKENDS = {
    "django.core.mail.backends.locmem.EmailBackend",
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
}
# SMTP 535 and friends mean our configuration is wrong, not the message: keep retrying (bounded).
SMTP_CONFIGURATION_CODES = {530, 534, 535, 538}


def message_id_domain() -> str:
    sender = settings.DEFAULT_FROM_EMAIL
    return sender.rsplit("@", 1)[-1].strip(" >") if "@" in sender else "localhost"


def _classify_smtp(error: smtplib.SMTPException) -> Exception:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        permanent = bool(codes) and all(500 <= code < 600 for code in codes)
        return PermanentError(f"recipient refused: {error.recipients}") if permanent else TransientError(str(error))
    code = getattr(error, "smtp_code", None)
    if isinstance(code, int) and 500 <= code < 600 and code not in SMTP_CONFIGURATION_CODES:
        return PermanentError(f"SMTP {code}: {getattr(error, 'smtp_error', error)!r}")
    return TransientError(f"SMTP: {error!r}")


def _classify_anymail(error: Exception) -> Exception:
    """django-anymail's errors, recognised by name so anymail stays optional."""
    names = {klass.__name__ for klass in type(error).__mro__}
    if "AnymailRecipientsRefused" in names or "AnymailInvalidAddress" in names:
        return PermanentError(f"recipient refused: {error}")
    status = getattr(error, "status_code", None)
    if isinstance(status, int) and 400 <= status < 500 and status not in (408, 425, 429):
        return PermanentError(f"ESP {status}: {error}")
    return TransientError(f"ESP: {error}")


class EmailChannel(ChannelBackend):
    def __init__(self, **options: object) -> None:
        self.connection: BaseEmailBackend | None = None
        self.confirm_each = settings.EMAIL_BACKEND not in IN_PROCESS_BACKENDS
        # Several SMTP (or ESP) connections per batch, each confirming its own sends.
        self.connections = settings.CAMPAIGN_SMTP_CONNECTIONS if self.confirm_each else 1
        self.domain = message_id_domain()

    def open(self) -> None:
        self.connection = get_connection(fail_silently=False)
        try:
            self.connection.open()
        except (OSError, smtplib.SMTPException) as error:
            self.connection = None
            raise TransientError(f"cannot connect to the mail server: {error!r}") from error

    def close(self) -> None:
        if self.connection is not None:
            # The server may have gone away after our last send: nothing left to tidy up then.
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self.connection.close()
            self.connection = None

    def _connection_lost(self) -> bool:
        """smtplib closes its socket itself on some answers (421: the server is closing)."""
        smtp = getattr(self.connection, "connection", None)
        return smtp is not None and getattr(smtp, "sock", True) is None

    def _deliver(self, email: EmailMessage) -> bool:
        """Hand the email to the backend. Over Django's own SMTP backend, what its ``send_messages``
        does, minus the lock (a connection is one lane's) and a parse of every address: plain ASCII
        addresses, which sanitising leaves as they are, go to the envelope unparsed."""
        backend = self.connection
        assert backend is not None  # send() opens the connection first
        if type(backend) is not SmtpEmailBackend or backend.connection is None:
            return bool(backend.send_messages([email]))
        recipients = email.recipients()
        if not recipients:
            return False
        encoding = email.encoding or settings.DEFAULT_CHARSET
        backend.connection.sendmail(
            envelope_address(email.from_email, encoding),
            [envelope_address(address, encoding) for address in recipients],
            email.message().as_bytes(linesep="\r\n"),
        )
        return True

    def build(self, message: Outgoing) -> EmailMessage:
        # Text only, or multipart/alternative with the HTML part (SPEC §4.2).
        return email_message_build(message, domain=self.domain)

    def send(self, message: Outgoing) -> str:
        if self.connection is None:
            self.open()
        try:
            sent = self._deliver(self.build(message))
        except smtplib.SMTPException as error:
            if isinstance(error, smtplib.SMTPServerDisconnected) or self._connection_lost():
                self.close()  # the next send opens a new connection: only this message is retried
            raise _classify_smtp(error) from error
        except OSError as error:
            self.close()
            raise TransientError(f"mail server unreachable: {error!r}") from error
        except Exception as error:
            if type(error).__module__.startswith("anymail"):
                raise _classify_anymail(error) from error
            raise
        if not sent:
            raise TransientError("the email backend reported nothing sent")
        return f"<{message.uuid}@{self.domain}>"


# An address sanitize_address would return unchanged: ASCII, no display name, no quoting.
PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")


def envelope_address(address: str, encoding: str) -> str:
    return address if PLAIN_ADDRESS.fullmatch(address) else sanitize_address(address, encoding)


def email_backend_class() -> type:
    return import_string(settings.EMAIL_BACKEND)
