"""An AMQP 0-9-1 consumer for tests/tests/bridge_clouds.rs (and the
README's RabbitMQ example): binds a queue of its own to `amq.topic` with
ROUTING_KEY on the RabbitMQ node at 127.0.0.1:PORT, prints `ready`, then
each message body on a line. Ends when nothing came for IDLE seconds.

Usage: python3 amqp_consumer.py PORT ROUTING_KEY [IDLE]
Needs pika (Debian's python3-pika).
"""

import sys

import pika


def main():
    port, key = int(sys.argv[1]), sys.argv[2]
    idle = float(sys.argv[3]) if len(sys.argv) > 3 else 120.0
    params = pika.ConnectionParameters(host="127.0.0.1", port=port, connection_attempts=10, retry_delay=1)
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    queue = ch.queue_declare(queue="", exclusive=True).method.queue
    ch.queue_bind(queue=queue, exchange="amq.topic", routing_key=key)
    print("ready", flush=True)
    for method, _props, body in ch.consume(queue, auto_ack=True, inactivity_timeout=idle):
        if method is None:
            break
        sys.stdout.write(body.decode() + "\n")
        sys.stdout.flush()
    conn.close()


if __name__ == "__main__":
    main()
