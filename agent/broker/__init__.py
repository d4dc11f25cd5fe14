"""The broker side: everything that speaks AMQP, and nothing else does.

    consumer     the job source: the one owner of the consuming connection (station
                 queue, control queue, pool claims in transactions)
    publisher    the outbox publisher: the one owner of the publishing connection
    session      a thread owning one connection, kept up by the reconnect policy
    reconnect    the policy: back off, knock on a closed port, start again small
    topology     the contract's exchanges and queues, declared and checked
    permissions  the broker permissions a station's own user needs
    embedded     the embedded default: intake and outbox without a broker (the demo)
    cli          `broker-permissions` and `declare-shared`, for administrators

Both owners hand what they receive to the station (`station.intake`) and take what they
send from the journal's outbox; no other thread touches their connections.
"""
