/* A shared library that is not a node pack: it has no comfyd_pack_init. */
int not_a_pack(void);
int not_a_pack(void) { return 42; }
