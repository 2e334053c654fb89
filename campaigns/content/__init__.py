"""What a message says and the customer's own pages about it (SPEC §4.2): HTML email in the shop's
layout, tracked links, topics and the preference centre, NPS answered inside the message."""
