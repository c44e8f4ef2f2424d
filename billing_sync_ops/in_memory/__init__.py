"""In-memory adapters of the ports (ERP, lineage, master data, waiting room, queues, rates): the seams the
tests and the posting bench run the real services against, without AWS."""
