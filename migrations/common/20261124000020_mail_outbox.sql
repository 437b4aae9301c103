-- Outgoing mail, written by whoever decides a mail is due (often inside a
-- projection's transaction) and drained by the mail sender of `herald serve`
-- or `herald worker`. The id is chosen by the caller and derived from the
-- cause (for example the event that asked for the mail), so enqueueing twice
-- is harmless; rows are therefore kept after sending, as the memory of what
-- was already sent. recipient, subject and body are opaque here: the caller
-- may store them sealed, and the sender unseals them just before sending.
--
-- States: due while next_attempt_at IS NOT NULL; sent when sent_at is set
-- (body cleared, since it carries one-time tokens); failed for good when
-- both are NULL, with last_error saying why (never a secret). A sender claims
-- a row by setting claimed_by/claimed_until; a crashed sender's claim expires
-- and the row is picked up again.
CREATE TABLE mail_outbox
(
    id              text   PRIMARY KEY,
    tenant_id       text   NOT NULL,
    kind            text   NOT NULL,
    recipient       text   NOT NULL,
    subject         text   NOT NULL,
    body            text   NOT NULL,
    created_at      bigint NOT NULL,
    next_attempt_at bigint,
    attempts        bigint NOT NULL DEFAULT 0,
    claimed_by      text,
    claimed_until   bigint NOT NULL DEFAULT 0,
    sent_at         bigint,
    last_error      text
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
