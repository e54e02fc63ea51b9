"""The synthetic CLEVR world: seeded scenes, Pillow renderings, CLEVR programs and questions.

Modules: ``scene`` (camera, placement, relationships), ``render`` (ray-cast images and
boxes), ``descriptions`` + ``questions`` (templates -> English + functional programs),
``reference_executor`` (CLEVR program semantics; answers come from it), ``world``
(scenes + questions as Samples or the official CLEVR_v1.0 files). CLI:
``python -m local_datasets.synthetic --out DIR --num_scenes N --questions_per_scene K --seed S --split val``.

Add a question template: add its phrasings and program construction to
``questions._sample_one`` and its name to ``questions.TEMPLATES`` (the index is the
``question_family_index``); new functions also need a handler in ``reference_executor``.
"""
