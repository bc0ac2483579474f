"""Notifications about rollout events: message bodies (`messages`, pure) and delivery to
webhooks over HTTP (`webhook`, the only module here that touches the network)."""
