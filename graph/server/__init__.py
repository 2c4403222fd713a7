"""What `langgraph dev` serves beside the graph (langgraph.json): its auth, and memory as LangGraph's Store."""
