DROP TABLE scheduler_ticks;
