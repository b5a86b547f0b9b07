"""One module per DVC stage; each has a ``run(params, root)`` function and a ``main()`` command entry."""
