"""Reading the message (pure): the periods it names (dates, named periods, periods counted from
an event), the structural keys it holds, whether it is a statement about its speaker, and which
of the chat's people it is about."""
