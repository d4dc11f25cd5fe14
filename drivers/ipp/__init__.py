"""The IPP driver: card printers behind a CUPS queue (`driver`), the answers read in the
agent's words (`attributes`), and a card as the document sent (`document`)."""
