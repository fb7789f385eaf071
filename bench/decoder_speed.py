"""Training speed of the dsprites decoders alone (issue 26): the dense decoder of the shipped
recipes against spatial broadcast decoders at several lattices and widths — one optimizer step
of a squared-output loss on a random code batch, images per second, in the run's precision.

    python bench/decoder_speed.py [--seconds 6] [--batch 256] [--precision mixed_bfloat16]

Prints one JSON line per decoder. Run it on an idle machine (under the CPU lock here).
"""
from __future__ import annotations

import argparse
import json
import time

LATENT = 6
# (name, builder keyword arguments); grid 64 broadcasts to every pixel (the paper's layout).
BROADCAST = [("broadcast_g64_u32_l2", dict(grid=64, units=32, num_layers=2)),
             ("broadcast_g64_u64_l2", dict(grid=64, units=64, num_layers=2)),
             ("broadcast_g32_u32_l2", dict(grid=32, units=32, num_layers=2)),
             ("broadcast_g16_u64_l2", dict(grid=16, units=64, num_layers=2)),  # the shipped one
             ("broadcast_g16_u64_l3", dict(grid=16, units=64, num_layers=3)),
             ("broadcast_g16_u128_l2", dict(grid=16, units=128, num_layers=2))]


def images_per_second(model, batch: int, seconds: float) -> float:
    import keras
    import tensorflow as tf

    optimizer = keras.optimizers.Adam()
    z = tf.random.normal((batch, LATENT), seed=0)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(tf.cast(model(z, training=True), tf.float32)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for _ in range(3):
        step()
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
    return steps * batch / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--precision", default="mixed_bfloat16", help="a Keras dtype policy")
    args = parser.parse_args(argv)

    import keras

    from gen_keras.models.networks import broadcast_decoder, mlp_decoder

    keras.mixed_precision.set_global_policy(args.precision)
    shape = (64, 64, 1)
    decoders = [("dense_512_512", lambda: mlp_decoder(shape, LATENT, hidden=512, num_layers=2))]
    decoders += [(name, lambda kw=kw: broadcast_decoder(shape, LATENT, **kw)) for name, kw in BROADCAST]
    for name, build in decoders:
        model = build()
        rate = images_per_second(model, args.batch, args.seconds)
        print(json.dumps({"decoder": name, "weights": int(model.count_params()), "batch": args.batch,
                          "precision": args.precision, "images_per_s": round(rate, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
