"""The non-chat front ends: the `phonedesk` CLI and the loopback local API it talks to."""
