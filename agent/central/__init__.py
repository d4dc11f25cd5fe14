"""The central system's side, as reference tools: what integrators run against stations.

    tools    Submitter (sign and publish jobs and control commands), EventTap (follow
             events), HandbackRelay (jobs stations give back)
    fleet    every station's state and consumables, for technicians
    samples  synthetic e-KTP-like jobs (fake names, drawn with Pillow)
    schema   JSON Schemas and the AsyncAPI document of the contract
    cli      `keys`, `sample-jobs`, `submit`, `control`, `watch`, `fleet`, `schema`

The station never imports from here; the tests, the demo and the benchmarks do.
"""
