"""The Gradio app: chat with the assistant, edit its answers, and see and edit what was learned.

``persona.ui.app.serve()`` opens a layer and launches it; ``build_app(layer, assistant)`` builds
the ``gr.Blocks`` for callers who launch it themselves. Gradio is imported only when used.
"""
