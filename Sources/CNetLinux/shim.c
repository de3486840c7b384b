int cnl_placeholder(void){return 0;}
