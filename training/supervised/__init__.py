"""Supervised side-trainers: one sequence trainer for any registered core, and its tasks.

    memrl supervised task=copy core=lstm
    memrl supervised task=associative_recall core=sam max_time_s=600
    memrl supervised task=babi core=sam task.path=<folder of qaN_*_train.txt>

``tasks/`` holds the task registry (algorithmic tasks with a curriculum, bAbI);
``model.py`` the embedding -> core -> head network; ``trainer.py`` the loop;
``cli.py`` the command bodies.
"""
