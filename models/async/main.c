/* placeholder until the model lands */
int main(void) { return 0; }
