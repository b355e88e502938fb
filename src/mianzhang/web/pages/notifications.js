// Notifications page (channels): to be completed by the channels work.
export function mount(root) {
  root.textContent = "Notifications";
  return () => {};
}

export default { id: "notifications", title: "Notifications", mount };
